package sfu

import "unsafe"

// A fan-out visits each classroom's down-track, egress and SRTP key once
// per picture, and by the next picture 200 classrooms' state has left the
// core's nearest caches: the first lock and atomic load of each visit
// waited on memory (docs/BENCHMARKS.md, "The send path, fifth round").
// So while one classroom is served, the CPU is asked to fetch what the
// next ones will touch, in stages: the down-track three visits ahead, its
// egress two ahead (reading the pointer from the down-track fetched the
// visit before), the egress's SRTP key one ahead. A prefetch never
// faults, changes nothing and costs a few instructions.
const prefetchStages = 3

// prefetchAhead asks for the state of the classrooms after sinks[i].
func prefetchAhead(sinks []sinkEntry, i int) {
	for stage := 1; stage <= prefetchStages; stage++ {
		if j := i + stage; j < len(sinks) && sinks[j].shared != nil {
			sinks[j].shared.prefetch(stage)
		}
	}
}

// prefetch asks for the part of d's state a visit touches that is stage
// visits away (prefetchAhead).
func (d *DownTrack) prefetch(stage int) {
	switch stage {
	case 3:
		prefetchLines(unsafe.Pointer(d), unsafe.Sizeof(*d))
	case 2:
		if e := d.queue; e != nil {
			prefetchLines(unsafe.Pointer(e), unsafe.Offsetof(e.plain))
		}
	case 1:
		if e := d.queue; e != nil {
			if out := e.srtpOut.Load(); out != nil {
				prefetchLines(unsafe.Pointer(out), unsafe.Sizeof(*out))
				if out.vaes != nil {
					prefetchLines(unsafe.Pointer(out.vaes), unsafe.Sizeof(*out.vaes))
				}
			}
		}
	}
}
