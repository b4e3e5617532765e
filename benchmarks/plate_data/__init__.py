"""Generated plate test set for the OCR benchmark (code only; images go to a cache directory)."""
