"""Where Django finds manage.py commands (its convention). Top floor: may import anything of
hotconf, and Django."""
