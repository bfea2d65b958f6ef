"""The worker gateway: volunteer nodes join the pool over an outbound WebSocket, never touching Redis."""
