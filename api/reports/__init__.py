"""Reports for coordinators: air-quality compliance (JSON, CSV) and territory indicators
(JSON, CSV, the printable annual statement). Routers, mounted by `create_app`."""
