from lorry.cli import main

main()
