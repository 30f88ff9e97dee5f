"""gofetch Python helpers (wire codec; the training hook comes later)."""
