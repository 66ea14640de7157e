"""Loopback stand-ins of the forges review publishes to: git smart HTTP (`git_http`), the
GitHub REST API v3 (`github`) and the GitLab REST API v4 (`gitlab`), each a real HTTP server
on 127.0.0.1 speaking the vendor's documented paths, headers, JSON shapes and statuses."""
