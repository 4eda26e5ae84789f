// Command tour runs "A Guided Tour of Ray Core: Remote Objects", both editions
// of the seed (the English notebook, then the Chinese one, 总览 … 长时间运行的
// 任务), cell by cell on an in-process trove cluster of three nodes. The cells,
// each beside the Python it stands for, are in internal/seeds/tour (the
// Chinese edition's are the tensor tutorial's, internal/seeds/tensors); the
// English cells' %%time is the wall time printed after them.
//
// The tour's sleeps are scaled by unit (a quarter of a second): its 10 s
// function is 2.5 s here, its 6 s timeout 1.5 s.
package main
