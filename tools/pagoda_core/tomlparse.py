"""The TOML parser every reader of TOML in Pagoda takes: Python 3.11's tomllib, or on 3.10
(Ubuntu 22.04) the same parser packaged as python3-tomli. `tomllib` is None until ./pagoda setup
has installed python3-tomli: importing this module never fails before setup has run."""
try:
    import tomllib
except ModuleNotFoundError:
    try:
        import tomli as tomllib
    except ModuleNotFoundError:
        tomllib = None

MISSING = "reading TOML needs Python 3.11 or python3-tomli: run ./pagoda setup"
