import NetWorkerCore

NetWorkerMain.run()
