from .dev import main

main()
