"""chanx's "Room Chat with Channel Layers" tutorial app, as a node of a mixed Rust/Python fleet.

The layout follows the tutorial's `src/`: `layers.py` registers the channel layers, `messages.py`
and `consumer.py` are the room chat, `main.py` is the FastAPI app. `tests/python/serve.py` runs it.
"""
