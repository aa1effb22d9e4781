import ExecWorkerCore

ExecWorkerMain.run()
