from .cli import main

if __name__ == "__main__":  # python -m instrec (torchrun -m instrec too); importing it runs nothing
    main()
