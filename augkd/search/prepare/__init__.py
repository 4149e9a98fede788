"""Before Ray starts: the search space and every override, the checks that refuse bad input,
the shared-stage plan, one search per name, and the forecast (``--estimate``)."""
