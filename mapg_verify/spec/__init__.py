"""A verification case as plain data: the game, the policy, ``theta`` and the settings of each part."""
