"""The dispatch console: live incident feed, workflow, plate search, watchlists and camera health (FastAPI).

Entry points: :func:`dispatch.app.create_app` (the ASGI app),
:func:`dispatch.inprocess.start_console_thread` (the demo's in-process console)
and ``kuzet console serve`` (:mod:`kuzet.commands.console`).
"""
