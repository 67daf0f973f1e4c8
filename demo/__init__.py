"""The UniEmo Gradio demo.

``demo.handlers``: plain functions (pipeline first, no gradio); ``demo.ui.build_demo(pipe)``: the page.
``app.py`` loads the model once and launches ``build_demo(pipe)``. Nothing is imported here, so that
``import demo.handlers`` never pulls in gradio.
"""
