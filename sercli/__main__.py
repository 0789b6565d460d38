from sercli.cli import main

main()
