"""`python -m avb_np.gradcheck`: the table of every gradient check in the package (avb_np.gradcheck_suite)."""
from avb_np.gradcheck_suite import main

raise SystemExit(main())
