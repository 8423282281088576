"""python -m services.execution: runs the execution agent."""
from services.common.server import main
from services.execution.server import build

if __name__ == "__main__":
    main("execution", build)
