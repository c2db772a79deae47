"""The staff mobile app's side of the control plane (the app itself: control/web/staff/).

Clinic staff carry their day on a phone through short losses of coverage: the clinic software
pushes what it holds (``records``: clients, patients, medical history, consultations, stock
items), the app syncs the agenda of yesterday, today and tomorrow in each department's time
zone (``window``, ``sync``) and writes preliminary notes (``notes``) and stock scans
(``scans``) offline; each lands once (``submissions``: idempotency keys made on the device)
and reaches the clinic software as a signed webhook through the notify outbox and through a
pull API with acknowledgement.

Access: an organization turns the app on (``orgsettings``); staff with the permission group
``mobile`` show a one-time login key in their profile (``loginkeys``), which the app exchanges
for a revocable device token (``devices``). Routes: ``api.ROUTES``, mounted by
control/routes.py.
"""
