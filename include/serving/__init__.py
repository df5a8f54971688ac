"""Online serving of a pipeline's champion model (MLflow's scoring protocol), following the alias.

`payload` reads requests, `model` loads a version with explicit URIs, `follower` keeps the
champion loaded and swaps it atomically, `metrics` counts, `app` is the ASGI app, `server` runs it
under uvicorn.
"""
