"""Users' torch modules for the custom family's tests (imported by path, as a workspace's are)."""
