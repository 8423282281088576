"""python -m services.validation: runs the validation agent."""
from services.common.server import main
from services.validation.server import build

if __name__ == "__main__":
    main("validation", build)
