"""Run reports and ``kflow ui``: the page model from run records, its renderers, the server.

Reads run records and logs from storage; never imports the scheduler.
"""
