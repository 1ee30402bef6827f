"""``hotconf serve``: an Apollo-compatible config service for development, demos and tests.

It speaks the client protocol of Apollo's config service (meta ``/services/config``,
``/configs``, ``/configfiles/json``, ``/notifications/v2``, access keys, gray releases) from
memory. It is a development tool: production uses Apollo.

Top floor: may import the pure core (protocol helpers, formats, options); no client code.
"""

from .server import DevServer
from .state import DevState

__all__ = ["DevServer", "DevState"]
