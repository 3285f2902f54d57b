# Record kinds of the VHDX log replay overlay, shared by the replay
# (vhdx_log.pyx) and the container's nogil BAT walk (vhdx.pyx).
cdef enum:
    OV_ZERO = 0     # a zero descriptor's run
    OV_DATA = 1     # one replayed data sector
