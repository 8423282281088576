"""python -m services.generation: runs the generation agent."""
from services.common.server import main
from services.generation.server import build

if __name__ == "__main__":
    main("generation", build)
