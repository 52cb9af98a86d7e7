from rtserve.provider.main import main

main()
