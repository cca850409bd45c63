"""The web dashboard: one static page and its script, served by the API (see api/dashboard.py).

It authenticates with an API key (read scope) kept in the browser's localStorage, given once
in the URL fragment (`/#key=sk_live_...`, never sent to the server in a URL or logged).
"""
