"""File formats: one module per format, its reader and its writer side by side.

``model_file`` (model format 1), ``device_file`` (device format 1 and the built-in profiles),
``plan_file`` (the plan JSON that ``solve -o`` writes and ``run`` reads), ``config_file``
(``edgeplan.yaml`` / ``[tool.edgeplan]``); ``_yaml`` (safe YAML with key-path errors) and
``_files`` (bounded reads, atomic writes) serve them. The use cases never read files.
"""
