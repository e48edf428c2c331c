"""One module per page; `frame()` draws the shared chrome."""
