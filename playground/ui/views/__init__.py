"""What each tab (and each API endpoint) computes, without any Gradio component.

Every public function takes the raw values a request carries, validates them
through :mod:`..validate` *before* any model work, runs the engine or the
inspection library on one model snapshot, and returns a plain dataclass that
a tab (``ui/tabs/``) or the API (``ui/api.py``) turns into its own output.
"""
