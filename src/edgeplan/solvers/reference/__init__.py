"""Oracles: straightforward implementations that tests check the fast ones against.

``dp`` is the first (unbanded) DP kernel, cell by cell the reference of ``solvers.dp_kernel``;
``hrevolve`` the H-Revolve / Disk-Revolve recurrences of the literature (their published tables);
``exact_offload`` the exhaustive search with a storage tier. Planning never imports this package.
"""
