"""The Apollo protocol and client.

- pure core: ``urls`` (request paths), ``signing`` (access-key headers), ``responses`` (parsing
  every answer), ``notifications`` (long-poll id bookkeeping) import nothing but errors;
- I/O edges: ``transport`` (HTTP, bounded in size and time; swappable, see
  ``hotconf.testing.MockTransport``) and ``client`` (discovery, failover, status codes).
"""
