"""The app's Config, at module level: created at import, read in views."""

from hotconf import Config

cfg = Config(namespaces=["application"])
GREETING_AT_IMPORT = cfg.get("greeting")  # settings-time reads happen in the master too
