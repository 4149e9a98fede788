"""Where things are kept: files at a path or URI, the content-addressed stage cache and its
elections, node copies of S3 artifacts, the default locations, output checks, and the
progress files stage tasks write for the driver."""
