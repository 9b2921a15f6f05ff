"""Step 2 of T-REX: checkpoints rolled out into demonstrations ranked by return, and the demo folder they live in."""
