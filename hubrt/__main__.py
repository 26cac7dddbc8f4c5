from hubrt.cli import main

main()
