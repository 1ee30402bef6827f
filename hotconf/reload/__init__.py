"""Reloading the server when connection-level keys change.

- ``policy`` (pure core): which changes call for a reload and when (settle, splay, minimum
  interval), the request handed to an action.
- ``actions`` (I/O edge): what a reload does when no server is involved (a callback, nothing);
  server-level actions live with their server in ``hotconf.servers``.
- ``controller`` (process role): runs the policy in a process and fires the action once.

May import: the pure core; ``controller`` also ``actions``.
"""
