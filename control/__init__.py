"""Televisit control plane: the REST API clinic software calls, join by PIN or link, tokens,
notifications, virtual clinic, staff app sync and the web client pages."""
