"""feedhub's republishing side: which entries a feed holds (select) and how it is written (render)."""
