package localcluster

import (
	"errors"
	"fmt"

	"github.com/trovedb/trove/task"
)

// StartTasks starts a task runtime on every node, node i with cfg(i) (nil:
// task.Config's defaults), and returns them in the nodes' order: Runtimes[0]
// is the driver's, on Nodes[0]. Close closes them before the nodes. On error
// the runtimes started are closed.
func (c *Cluster) StartTasks(cfg func(i int) task.Config) ([]*task.Runtime, error) {
	rts := make([]*task.Runtime, len(c.Nodes))
	for i, n := range c.Nodes {
		var tc task.Config
		if cfg != nil {
			tc = cfg(i)
		}
		rt, err := task.Start(n, tc)
		if err != nil {
			for _, r := range rts[:i] {
				r.Close()
			}
			return nil, fmt.Errorf("localcluster: start the task runtime of %s: %w", n.Name(), err)
		}
		rts[i] = rt
	}
	c.runtimes = rts
	return rts, nil
}

// closeTasks closes the runtimes StartTasks started, the last first.
func (c *Cluster) closeTasks() error {
	var errs []error
	for i := len(c.runtimes) - 1; i >= 0; i-- {
		errs = append(errs, c.runtimes[i].Close())
	}
	c.runtimes = nil
	return errors.Join(errs...)
}
