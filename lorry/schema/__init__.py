"""Item types, their fields, and the validators compiled from them."""
