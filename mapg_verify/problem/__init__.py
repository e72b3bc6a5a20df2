"""The problem: tabular and differentiable games, the catalogue of shipped games, tabular
policies, the parameter layout, and the input error every layer raises."""
