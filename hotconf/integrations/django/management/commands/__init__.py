"""``manage.py hotconf``. Top floor: may import anything of hotconf, and Django."""
