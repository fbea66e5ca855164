from distillserve.cli import main

main()
