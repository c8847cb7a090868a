// bboltcheck: bbolt's own consistency check (what `bbolt check` runs: tx.Check) and a listing of
// buckets and key counts, built offline from Debian's golang-github-coreos-bbolt-dev.
// Usage: bboltcheck check FILE | bboltcheck buckets FILE. Built by tests/support/bboltcheck/__init__.py.
package main

import (
	"fmt"
	"os"

	bolt "go.etcd.io/bbolt"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: bboltcheck check|buckets FILE")
		os.Exit(2)
	}
	db, err := bolt.Open(os.Args[2], 0400, &bolt.Options{ReadOnly: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		if os.Args[1] == "check" {
			n := 0
			for e := range tx.Check() {
				fmt.Println(e)
				n++
			}
			if n > 0 {
				return fmt.Errorf("%d errors found", n)
			}
			fmt.Println("OK")
			return nil
		}
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			fmt.Printf("%s %d\n", name, b.Stats().KeyN)
			return nil
		})
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
