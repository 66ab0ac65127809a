"""`zoo prepare` steps, one module each: they may use OpenCV; no datamodule imports them."""
