"""The API gateway (port 8080): one front door for every Inwire service.

Routes ``/<prefix>/…`` to the service with that prefix, authenticates (JWT or API key),
rate-limits, traces and streams requests both ways; see ``inwire.gateway.app``.
"""
