"""Resource plans: actor resources, packing hospitals into processes, memory estimates."""
