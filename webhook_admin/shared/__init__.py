"""What both wings use, owned by neither: the URL rules (destination.py), signing
(signing.py) and the header names the sender owns (headers.py). Services (endpoint
validation, ingest) and the delivery wing (the sender) import these; nothing here imports
services or the delivery wing."""
