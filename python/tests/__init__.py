"""Tests of the websocket_worker package."""
