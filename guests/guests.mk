# Freestanding guests (no libc), built with the host compiler and embedded in
# libvmm.a (src/vmm/guest-images.S).  Included by the top-level Makefile.
GUEST_NAMES   := workload boot-like dirty
GUEST_BINS    := $(GUEST_NAMES:%=$(BUILD)/guests/%.bin)
GUEST_CFLAGS  := -std=gnu11 -O2 -Wall -Wextra -Werror -ffreestanding -fno-pic -fno-pie \
                 -mno-red-zone -mgeneral-regs-only -fno-stack-protector -fno-builtin \
                 -fcf-protection=none -fno-asynchronous-unwind-tables -Iguests
GUEST_LDFLAGS := -nostdlib -static -Wl,--no-pie -Wl,-T,guests/guest.ld -Wl,--build-id=none \
                 -Wl,-z,noexecstack

$(BUILD)/guests/%.elf: guests/start.S guests/%.c guests/rt.h guests/layout.h \
                       guests/workload-algo.h guests/dirty-algo.h guests/guest.ld
	@mkdir -p $(dir $@)
	@[ "$(V)" = 0 ] && echo "  GUEST   $@" || true
	$(Q)$(CC) $(GUEST_CFLAGS) $(GUEST_LDFLAGS) -o $@ guests/start.S guests/$*.c

.PRECIOUS: $(BUILD)/guests/%.elf
$(BUILD)/guests/%.bin: $(BUILD)/guests/%.elf
	$(Q)objcopy -O binary $< $@

# .incbin "guests/NAME.bin" is found through the assembler's include path.
$(BUILD)/src/vmm/guest-images.o: CFLAGS += -Wa,-I$(BUILD)
