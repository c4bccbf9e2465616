"""From a request to finished cells: the grid, cell identity, the results store and claims, the
runner, the scheduler and executors, launch, and the mlflow mirror."""
