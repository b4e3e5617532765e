"""Backend plugin modules; each exposes ``create(model_cfg, cache_dir) -> Detector``."""
